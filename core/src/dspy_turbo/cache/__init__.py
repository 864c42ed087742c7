"""The exact cache: request keys, the entry envelope and the value codec, the backend contract,
the memory tier, the tiered cache and its circuit breakers, entry integrity, admission,
per-call controls, export and import, the cache directory, the item cache (program-level
keys) and the cached functions and programs built on it."""
