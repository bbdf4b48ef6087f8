GREETING = "hello from the append"
