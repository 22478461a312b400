"""Pure business code: standard library only, no asyncio, no I/O."""
