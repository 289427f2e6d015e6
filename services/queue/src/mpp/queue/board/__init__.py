"""The live display board: recent calls per site, fed by the queue's own events on Kafka."""
