"""GPT judge for MM-Vet and LLaVA-Bench-in-the-Wild: an OpenAI-compatible client with retries and a disk cache.

Import what you need from its module (settings, client, cache, tasks, prompts, redaction): the package itself loads
nothing, so the CLI adds the judge flags (judge.settings) at start-up without loading the client or the prompts."""
