"""tickbook: the top of the house. The command line and the orchestration of the parts below it
(engine/, offload/, hdl/), which never import from here (docs/architecture.md)."""
