//! The inline-Python subset evaluator for `${@...}` expressions.
//!
//! Contract (used by the datastore's expansion):
//! `eval_inline(src, ctx)` evaluates the text between `${@` and `}` and
//! returns its value converted to a string the way BitBake does (`str(value)`;
//! `None` becomes the empty string... see the module docs once implemented).

/// What an inline expression can ask of the datastore.
pub trait PyContext {
    /// `d.getVar(name, expand)`: the variable's value, expanded when `expand`
    /// is true; `None` when the variable is unset.
    fn get_var(&self, name: &str, expand: bool) -> Option<String>;
    /// `d.getVarFlag(name, flag, expand)`.
    fn get_var_flag(&self, name: &str, flag: &str, expand: bool) -> Option<String>;
    /// Expand `${...}` references in a string (`d.expand(s)`).
    fn expand(&self, s: &str) -> String;
}

/// Why an inline expression could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PyError {
    /// What went wrong, for a human: names the unsupported construct.
    pub message: String,
    /// Byte offset within the expression text where the problem starts.
    pub offset: usize,
}

/// Evaluate an inline Python expression.
pub fn eval_inline(src: &str, _ctx: &dyn PyContext) -> Result<String, PyError> {
    Err(PyError {
        message: format!("inline python is not supported yet: {src}"),
        offset: 0,
    })
}
