//! The messages bitzel exchanges with a REAPI v2 engine, declared by hand
//! with `prost` from the public specification's field numbers: the
//! execution API (`build.bazel.remote.execution.v2`), ByteStream
//! (`google.bytestream`), long-running operations (`google.longrunning`),
//! `google.rpc.Status`, `google.protobuf.Any` and the Remote Workers API
//! (`google.devtools.remoteworkers.v1test2`) that BuildGrid's bots speak.
//! Only the fields bitzel reads or writes are declared: a decoder skips the
//! others, and an absent field is its default. `Digest` and `ActionResult`
//! are those of the remote cache (`bitzel_cache::remote::proto`), so an
//! action-cache entry means the same over HTTP and gRPC.
//! `tests::field_numbers_on_the_wire` checks a few encodings byte by byte.

pub use bitzel_cache::remote::proto::{ActionResult, Digest};

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    /// `type.googleapis.com/<full message name>`.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// The encoded message.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// The `type_url` prefix of [`Any`].
pub const TYPE_PREFIX: &str = "type.googleapis.com/";

impl Any {
    /// `msg` packed as `name` (its full protobuf name).
    pub fn pack(name: &str, msg: &impl prost::Message) -> Any {
        Any {
            type_url: format!("{TYPE_PREFIX}{name}"),
            value: msg.encode_to_vec(),
        }
    }

    /// Whether this holds a message named `name`.
    pub fn is(&self, name: &str) -> bool {
        self.type_url.strip_prefix(TYPE_PREFIX) == Some(name)
            || self.type_url.rsplit('/').next() == Some(name)
    }
}

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    /// A `google.rpc.Code` (0 is OK).
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Why, for people.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// `google.protobuf.Duration`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Duration {
    /// Seconds.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `build.bazel.remote.execution.v2.Platform.Property`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, prost::Message)]
pub struct Property {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `build.bazel.remote.execution.v2.Platform` (properties sorted by name).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Platform {
    /// The properties.
    #[prost(message, repeated, tag = "1")]
    pub properties: Vec<Property>,
}

/// `build.bazel.remote.execution.v2.Action`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Action {
    /// The [`Command`].
    #[prost(message, optional, tag = "1")]
    pub command_digest: Option<Digest>,
    /// The input root [`Directory`].
    #[prost(message, optional, tag = "2")]
    pub input_root_digest: Option<Digest>,
    /// Execution timeout.
    #[prost(message, optional, tag = "6")]
    pub timeout: Option<Duration>,
    /// Never cache the result.
    #[prost(bool, tag = "7")]
    pub do_not_cache: bool,
    /// The platform (REAPI 2.2 and later read it here).
    #[prost(message, optional, tag = "10")]
    pub platform: Option<Platform>,
}

/// `build.bazel.remote.execution.v2.Command.EnvironmentVariable`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EnvironmentVariable {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `build.bazel.remote.execution.v2.Command`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Command {
    /// argv.
    #[prost(string, repeated, tag = "1")]
    pub arguments: Vec<String>,
    /// Environment, sorted by name.
    #[prost(message, repeated, tag = "2")]
    pub environment_variables: Vec<EnvironmentVariable>,
    /// The platform (older engines read it here).
    #[prost(message, optional, tag = "5")]
    pub platform: Option<Platform>,
    /// Output paths.
    #[prost(string, repeated, tag = "7")]
    pub output_paths: Vec<String>,
}

/// `build.bazel.remote.execution.v2.FileNode`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FileNode {
    /// Name in its directory.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Content.
    #[prost(message, optional, tag = "2")]
    pub digest: Option<Digest>,
    /// Executable bit.
    #[prost(bool, tag = "4")]
    pub is_executable: bool,
}

/// `build.bazel.remote.execution.v2.DirectoryNode`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DirectoryNode {
    /// Name in its directory.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The child [`Directory`].
    #[prost(message, optional, tag = "2")]
    pub digest: Option<Digest>,
}

/// `build.bazel.remote.execution.v2.Directory` (nodes sorted by name).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Directory {
    /// Files.
    #[prost(message, repeated, tag = "1")]
    pub files: Vec<FileNode>,
    /// Subdirectories.
    #[prost(message, repeated, tag = "2")]
    pub directories: Vec<DirectoryNode>,
}

/// `build.bazel.remote.execution.v2.ExecuteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExecuteRequest {
    /// Instance.
    #[prost(string, tag = "1")]
    pub instance_name: String,
    /// Run even if the action cache has a result.
    #[prost(bool, tag = "3")]
    pub skip_cache_lookup: bool,
    /// The [`Action`].
    #[prost(message, optional, tag = "6")]
    pub action_digest: Option<Digest>,
}

/// `build.bazel.remote.execution.v2.ExecuteResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExecuteResponse {
    /// The result.
    #[prost(message, optional, tag = "1")]
    pub result: Option<ActionResult>,
    /// Whether it came from the action cache.
    #[prost(bool, tag = "2")]
    pub cached_result: bool,
    /// Why the action could not run (OK when it ran, whatever its exit code).
    #[prost(message, optional, tag = "3")]
    pub status: Option<Status>,
    /// For people.
    #[prost(string, tag = "5")]
    pub message: String,
}

/// `build.bazel.remote.execution.v2.ExecuteOperationMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExecuteOperationMetadata {
    /// `ExecutionStage.Value`: 1 cache check, 2 queued, 3 executing, 4 completed.
    #[prost(int32, tag = "1")]
    pub stage: i32,
}

/// `google.longrunning.Operation`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Operation {
    /// Name (for `WaitExecution`).
    #[prost(string, tag = "1")]
    pub name: String,
    /// [`ExecuteOperationMetadata`].
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<Any>,
    /// Finished.
    #[prost(bool, tag = "3")]
    pub done: bool,
    /// The failure, when done with one.
    #[prost(message, optional, tag = "4")]
    pub error: Option<Status>,
    /// The [`ExecuteResponse`], when done.
    #[prost(message, optional, tag = "5")]
    pub response: Option<Any>,
}

/// `build.bazel.remote.execution.v2.WaitExecutionRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WaitExecutionRequest {
    /// The operation's name.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `build.bazel.remote.execution.v2.FindMissingBlobsRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FindMissingBlobsRequest {
    /// Instance.
    #[prost(string, tag = "1")]
    pub instance_name: String,
    /// Blobs to check.
    #[prost(message, repeated, tag = "2")]
    pub blob_digests: Vec<Digest>,
}

/// `build.bazel.remote.execution.v2.FindMissingBlobsResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FindMissingBlobsResponse {
    /// Those the server lacks.
    #[prost(message, repeated, tag = "2")]
    pub missing_blob_digests: Vec<Digest>,
}

/// `build.bazel.remote.execution.v2.BatchUpdateBlobsRequest.Request`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateBlob {
    /// Its digest.
    #[prost(message, optional, tag = "1")]
    pub digest: Option<Digest>,
    /// Its content.
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

/// `build.bazel.remote.execution.v2.BatchUpdateBlobsRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchUpdateBlobsRequest {
    /// Instance.
    #[prost(string, tag = "1")]
    pub instance_name: String,
    /// Blobs.
    #[prost(message, repeated, tag = "2")]
    pub requests: Vec<UpdateBlob>,
}

/// `build.bazel.remote.execution.v2.BatchUpdateBlobsResponse.Response`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateBlobResponse {
    /// Which blob.
    #[prost(message, optional, tag = "1")]
    pub digest: Option<Digest>,
    /// How it went.
    #[prost(message, optional, tag = "2")]
    pub status: Option<Status>,
}

/// `build.bazel.remote.execution.v2.BatchUpdateBlobsResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchUpdateBlobsResponse {
    /// One per blob.
    #[prost(message, repeated, tag = "1")]
    pub responses: Vec<UpdateBlobResponse>,
}

/// `build.bazel.remote.execution.v2.BatchReadBlobsRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchReadBlobsRequest {
    /// Instance.
    #[prost(string, tag = "1")]
    pub instance_name: String,
    /// Blobs.
    #[prost(message, repeated, tag = "2")]
    pub digests: Vec<Digest>,
}

/// `build.bazel.remote.execution.v2.BatchReadBlobsResponse.Response`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadBlobResponse {
    /// Which blob.
    #[prost(message, optional, tag = "1")]
    pub digest: Option<Digest>,
    /// Its content.
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
    /// How it went (NOT_FOUND when absent).
    #[prost(message, optional, tag = "3")]
    pub status: Option<Status>,
}

/// `build.bazel.remote.execution.v2.BatchReadBlobsResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BatchReadBlobsResponse {
    /// One per blob.
    #[prost(message, repeated, tag = "1")]
    pub responses: Vec<ReadBlobResponse>,
}

/// `build.bazel.remote.execution.v2.GetActionResultRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetActionResultRequest {
    /// Instance.
    #[prost(string, tag = "1")]
    pub instance_name: String,
    /// The key.
    #[prost(message, optional, tag = "2")]
    pub action_digest: Option<Digest>,
}

/// `build.bazel.remote.execution.v2.UpdateActionResultRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateActionResultRequest {
    /// Instance.
    #[prost(string, tag = "1")]
    pub instance_name: String,
    /// The key.
    #[prost(message, optional, tag = "2")]
    pub action_digest: Option<Digest>,
    /// The result.
    #[prost(message, optional, tag = "3")]
    pub action_result: Option<ActionResult>,
}

/// `google.bytestream.ReadRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadRequest {
    /// `[{instance}/]blobs/{hash}/{size}`.
    #[prost(string, tag = "1")]
    pub resource_name: String,
    /// Offset.
    #[prost(int64, tag = "2")]
    pub read_offset: i64,
    /// 0: to the end.
    #[prost(int64, tag = "3")]
    pub read_limit: i64,
}

/// `google.bytestream.ReadResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadResponse {
    /// The next chunk.
    #[prost(bytes = "vec", tag = "10")]
    pub data: Vec<u8>,
}

/// `google.bytestream.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// `[{instance}/]uploads/{uuid}/blobs/{hash}/{size}` (first message).
    #[prost(string, tag = "1")]
    pub resource_name: String,
    /// Offset of this chunk.
    #[prost(int64, tag = "2")]
    pub write_offset: i64,
    /// Last chunk.
    #[prost(bool, tag = "3")]
    pub finish_write: bool,
    /// The chunk.
    #[prost(bytes = "vec", tag = "10")]
    pub data: Vec<u8>,
}

/// `google.bytestream.WriteResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteResponse {
    /// Bytes the server holds.
    #[prost(int64, tag = "1")]
    pub committed_size: i64,
}

/// `google.devtools.remoteworkers.v1test2.Worker.Property` (also `Device.Property`, `Worker.Config`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// Key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.devtools.remoteworkers.v1test2.Device`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Device {
    /// A handle unique to the bot.
    #[prost(string, tag = "1")]
    pub handle: String,
    /// Its properties.
    #[prost(message, repeated, tag = "2")]
    pub properties: Vec<KeyValue>,
}

/// `google.devtools.remoteworkers.v1test2.Worker`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Worker {
    /// Devices (the first is the primary).
    #[prost(message, repeated, tag = "1")]
    pub devices: Vec<Device>,
    /// Properties.
    #[prost(message, repeated, tag = "2")]
    pub properties: Vec<KeyValue>,
    /// Configs (BuildGrid reads `capacity` here).
    #[prost(message, repeated, tag = "3")]
    pub configs: Vec<KeyValue>,
}

/// `google.devtools.remoteworkers.v1test2.LeaseState`.
pub mod lease_state {
    /// Assigned, not yet accepted.
    pub const PENDING: i32 = 1;
    /// Being worked on.
    pub const ACTIVE: i32 = 2;
    /// Finished (with `status` and `result`).
    pub const COMPLETED: i32 = 4;
    /// Cancelled by the server.
    pub const CANCELLED: i32 = 5;
}

/// `google.devtools.remoteworkers.v1test2.BotStatus`.
pub mod bot_status {
    /// Healthy.
    pub const OK: i32 = 1;
    /// Shutting down: unfinished leases are requeued.
    pub const BOT_TERMINATING: i32 = 4;
}

/// `google.devtools.remoteworkers.v1test2.Lease`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Lease {
    /// State ([`lease_state`]).
    #[prost(int32, tag = "2")]
    pub state: i32,
    /// Outcome, when completed.
    #[prost(message, optional, tag = "3")]
    pub status: Option<Status>,
    /// Id.
    #[prost(string, tag = "7")]
    pub id: String,
    /// The work: an [`Action`] (or its digest).
    #[prost(message, optional, tag = "8")]
    pub payload: Option<Any>,
    /// The [`ActionResult`], when completed.
    #[prost(message, optional, tag = "9")]
    pub result: Option<Any>,
}

/// `google.devtools.remoteworkers.v1test2.BotSession`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BotSession {
    /// Server-assigned name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The bot's own, restart-stable id.
    #[prost(string, tag = "2")]
    pub bot_id: String,
    /// [`bot_status`].
    #[prost(int32, tag = "3")]
    pub status: i32,
    /// What the bot is.
    #[prost(message, optional, tag = "4")]
    pub worker: Option<Worker>,
    /// Its leases.
    #[prost(message, repeated, tag = "5")]
    pub leases: Vec<Lease>,
    /// Server's version of the session.
    #[prost(string, tag = "7")]
    pub version: String,
}

/// `google.devtools.remoteworkers.v1test2.CreateBotSessionRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateBotSessionRequest {
    /// The instance.
    #[prost(string, tag = "1")]
    pub parent: String,
    /// The session.
    #[prost(message, optional, tag = "2")]
    pub bot_session: Option<BotSession>,
}

/// `google.devtools.remoteworkers.v1test2.UpdateBotSessionRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateBotSessionRequest {
    /// The session's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The whole session.
    #[prost(message, optional, tag = "2")]
    pub bot_session: Option<BotSession>,
}

/// Full names used in [`Any`] and the service paths.
pub mod names {
    /// `Action`.
    pub const ACTION: &str = "build.bazel.remote.execution.v2.Action";
    /// `ActionResult`.
    pub const ACTION_RESULT: &str = "build.bazel.remote.execution.v2.ActionResult";
    /// `Digest`.
    pub const DIGEST: &str = "build.bazel.remote.execution.v2.Digest";
    /// `ExecuteResponse`.
    pub const EXECUTE_RESPONSE: &str = "build.bazel.remote.execution.v2.ExecuteResponse";
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn field_numbers_on_the_wire() {
        // Lease: state=2 (varint), id=7 (bytes): keys 0x10 and 0x3a.
        let l = Lease {
            state: lease_state::ACTIVE,
            id: "x".into(),
            ..Default::default()
        };
        assert_eq!(l.encode_to_vec(), vec![0x10, 2, 0x3a, 1, b'x']);
        // BotSession: bot_id=2 (0x12), status=3 (0x18).
        let b = BotSession {
            bot_id: "b".into(),
            status: bot_status::BOT_TERMINATING,
            ..Default::default()
        };
        assert_eq!(b.encode_to_vec(), vec![0x12, 1, b'b', 0x18, 4]);
        // ExecuteRequest: instance_name=1 (0x0a), action_digest=6 (0x32).
        let e = ExecuteRequest {
            instance_name: "i".into(),
            skip_cache_lookup: false,
            action_digest: Some(Digest {
                hash: "h".into(),
                size_bytes: 3,
            }),
        };
        assert_eq!(
            e.encode_to_vec(),
            vec![0x0a, 1, b'i', 0x32, 5, 0x0a, 1, b'h', 0x10, 3]
        );
        // ByteStream data=10: key 0x52.
        let r = ReadResponse { data: vec![7] };
        assert_eq!(r.encode_to_vec(), vec![0x52, 1, 7]);
        // Action: platform=10 (0x52), do_not_cache=7 (0x38).
        let a = Action {
            do_not_cache: true,
            platform: Some(Platform::default()),
            ..Default::default()
        };
        assert_eq!(a.encode_to_vec(), vec![0x38, 1, 0x52, 0]);
    }
}
