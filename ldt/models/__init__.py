"""TFLite model bundles: the manifest, the bundle file, the interpreter, the project's own model.

Shared by the cloud (validates uploads) and the agent (runs them)."""
