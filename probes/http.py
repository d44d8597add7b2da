from typing import Any

async def probe_http(target: Any, ctx: Any) -> Any:  # placeholder, replaced by the real probe
    raise NotImplementedError
