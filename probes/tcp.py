from typing import Any

async def probe_tcp(target: Any, ctx: Any) -> Any:  # placeholder, replaced by the real probe
    raise NotImplementedError
