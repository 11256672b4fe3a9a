"""One module per pipeline stage: sources, batcher, inference, masks, tracker, publishers and sinks."""
