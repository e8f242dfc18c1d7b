"""The live service: capture threads per source, a face worker per source, one batched inference worker, smoothing,
state, an event bus to the API's subscribers, and a watchdog over all of them."""
