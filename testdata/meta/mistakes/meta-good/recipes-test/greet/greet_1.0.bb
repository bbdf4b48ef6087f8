SUMMARY = "A recipe the bbappend of meta-dangling extends"
GREETING = "hello"
