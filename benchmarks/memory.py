"""Memory of the peer cache: 1M peers cached in one account (tracemalloc), and the cap respected."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

from benchmarks.data import BASE_ID
from benchmarks.harness import quick
from tgpersist import PeerType
from tgpersist.clock import utcnow
from tgpersist.peer_cache import PeerCache
from tgpersist.repositories.peers import trusted_peer


def peer(i: int, stamp: Any) -> Any:
    """A typical user as read back from the store: access hash, username, first and last name, and a
    phone number on every fifth; strings made per peer (as reading rows makes them)."""
    username = f"user_{i}"
    return trusted_peer(
        BASE_ID + i,
        PeerType.USER,
        (i * 7919) % (2**62) + 1,
        username,
        (username,),
        f"First {i}",
        f"Last {i}",
        None,
        f"44770{i:07d}" if i % 5 == 0 else None,
        False,
        None,
        None,
        stamp,
    )


async def measure(urls: dict[str, str]) -> list[dict[str, Any]]:
    count = 100_000 if quick() else 1_000_000
    stamp = utcnow()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    peers = [peer(i, stamp) for i in range(count)]
    with_peers = tracemalloc.get_traced_memory()[0]
    cache = PeerCache(count)
    token = cache.token()
    for p in peers:
        cache.fill(token, p.id, p)
    cached = tracemalloc.get_traced_memory()[0]
    for i in range(count, count + count // 10):  # 10% more than the cap: the oldest go
        cache.fill(token, BASE_ID + i, peer(i, stamp))
    del peers
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(cache) == count
    per_peer_objects = (with_peers - base) / count
    per_peer_cache = (cached - with_peers) / count
    return [
        {
            "operation": f"memory: {count:,} cached peers",
            "implementation": "tgpersist PeerCache",
            "kind": "memory",
            "peers": count,
            "bytes_total": cached - base,
            "bytes_per_peer": (cached - base) / count,
            "bytes_per_peer_objects": per_peer_objects,
            "bytes_per_peer_index": per_peer_cache,
            "bytes_after_overfill": after - base,
            "cap_respected": len(cache) == count,
            "note": f"{count // 10:,} more filled past the cap: still {len(cache):,} cached",
        }
    ]
