from typing import Any

async def probe_icmp(target: Any, ctx: Any) -> Any:  # placeholder
    raise NotImplementedError
