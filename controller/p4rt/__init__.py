"""An asyncio P4Runtime client: sessions, arbitration, pipelines, typed entities by name."""
