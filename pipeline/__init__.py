"""maskstream runtime: configuration, stage graph, queues, CLI and the event schema."""
