"""Node-to-node links on real sockets, in one process: two `Links` (or a `Links` and a
receiver written here from the wire rules) that find each other through an address
book instead of Redis. The nodes' tests (test_cluster*.py, test_failures.py) run the
same links between real processes."""

from __future__ import annotations

import collections

import attrs
import trio

from rtcserver.cluster import linkwire
from rtcserver.cluster.links import Item, Links
from rtcserver.cluster.linkwire import FrameReader
from tests.support.waiting import eventually

KEY = linkwire.link_key(b"a cluster's secret")


@attrs.define
class Book:
    """The part of a node a link needs: its id, the key, where the other nodes are."""

    node: str
    key: bytes | None
    addresses: dict[str, str]
    timeout: float = 2.0
    min_backoff: float = 0.05
    max_backoff: float = 0.2

    @property
    def link_key(self) -> bytes | None:
        return self.key

    async def link_address(self, node: str) -> str | None:
        return self.addresses.get(node)


@attrs.define
class End:
    links: Links
    counters: collections.Counter[str]
    received: list[str] = attrs.field(factory=list)
    lost: list[tuple[str, str]] = attrs.field(factory=list)  # (frame text, why)
    batches: list[int] = attrs.field(factory=list)

    def send(self, node: str, text: str) -> bool:
        return self.links.send(node, (linkwire.encode(text), text[0], None, -1.0)) is None


async def _end(
    nursery: trio.Nursery,
    node: str,
    addresses: dict[str, str],
    key: bytes = KEY,
    max_bytes: int = 1 << 20,
    backoff: float = 0.05,
    timeout: float = 2.0,
) -> End:
    counters: collections.Counter[str] = collections.Counter()
    end: End

    def lost_now(_node: str, items: list[Item], why: str, _redis_down: bool) -> None:
        end.lost.extend((item[0][4:].decode(), why) for item in items)

    async def lost(node: str, items: list[Item], why: str, redis_down: bool) -> None:
        lost_now(node, items, why, redis_down)

    links = Links(
        Book(node, key, addresses, timeout, min_backoff=backoff, max_backoff=4 * backoff),
        counters,
        max_bytes=max_bytes,
        max_frames=100_000,
        on_sent=lambda batch: end.batches.append(len(batch)),
        on_lost=lost,
        on_lost_now=lost_now,
    )
    end = End(links, counters)
    port = await nursery.start(links.run, "127.0.0.1", 0, end.received.append)
    addresses[node] = f"127.0.0.1:{port}"
    return end


async def test_a_burst_arrives_whole_in_order_in_few_writes_and_is_acknowledged() -> None:
    addresses: dict[str, str] = {}
    async with trio.open_nursery() as nursery:
        a = await _end(nursery, "a", addresses)
        b = await _end(nursery, "b", addresses)
        texts = [f'M|1|a/1|2\n{{"n":{n},"pad":"{"é" * 50}"}}' for n in range(5000)]
        assert all(a.send("b", text) for text in texts)
        await eventually(lambda: len(b.received) >= len(texts), 10, "the burst at b")
        assert b.received == texts
        assert len(a.batches) <= 3, a.batches  # queued while the link opened: one write
        await eventually(lambda: a.links.backlog == 0, 5, "every frame acknowledged")
        assert a.lost == []
        nursery.cancel_scope.cancel()


async def test_a_cut_link_loses_nothing_silently_and_the_next_frames_reconnect() -> None:
    addresses: dict[str, str] = {}
    async with trio.open_nursery() as nursery:
        a = await _end(nursery, "a", addresses)
        b = await _end(nursery, "b", addresses)
        sent = [f"M|1|a/1|2\n{n}" for n in range(3000)]
        refused: set[str] = set()
        for n, text in enumerate(sent):
            if not a.send("b", text):
                refused.add(text)  # the sender would get ERROR at once
            if n % 100 == 99:
                await trio.sleep(0.001)
            if n == 1000:
                assert b.links.inbound.close_all() == 1
        await eventually(lambda: a.links.backlog == 0, 10, "nothing left waiting at a")
        assert a.counters["cluster:link-broken"] >= 1
        assert all(n > 1000 for n in (int(t.split("\n")[1]) for t in refused))
        # Every frame arrived, or came back to its sender: none vanished.
        assert set(b.received) | {text for text, _ in a.lost} | refused == set(sent)
        # What arrived kept its order, and frames after the cut went over a new link.
        order = [int(text.split("\n")[1]) for text in b.received]
        assert order == sorted(order)
        assert order[-1] == len(sent) - 1
        nursery.cancel_scope.cancel()


async def _mute_node(
    nursery: trio.Nursery, addresses: dict[str, str], hang: trio.Event | None
) -> list[str]:
    """A receiver that proves the key, takes frames and never acknowledges one: it
    closes after 50 frames, or (with `hang`) holds the link open until `hang` is set."""
    taken: list[str] = []
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    addresses["mute"] = f"127.0.0.1:{listeners[0].socket.getsockname()[1]}"

    async def mute_receiver(stream: trio.SocketStream) -> None:
        async with stream:
            reader = FrameReader(1 << 20)
            nonce = linkwire.nonce()
            await stream.send_all(linkwire.encode(linkwire.hello("mute", nonce)))
            claim = reader.feed(await stream.receive_some(1024))[0]
            checked = linkwire.check_claim(KEY, "mute", nonce, claim)
            assert checked is not None
            await stream.send_all(linkwire.encode(checked[1]))
            while len(taken) < 50:
                taken.extend(reader.feed(await stream.receive_some(65536)))
            if hang is not None:
                await hang.wait()

    await nursery.start(trio.serve_listeners, mute_receiver, listeners)
    return taken


async def test_frames_a_link_took_but_never_acknowledged_come_back_when_it_breaks() -> None:
    """The receiver takes the frames and closes without a word: every one of them is
    reported lost (its sender gets ERROR), none vanishes."""
    addresses: dict[str, str] = {}
    async with trio.open_nursery() as nursery:
        taken = await _mute_node(nursery, addresses, None)
        a = await _end(nursery, "a", addresses)
        sent = [f"M|1|a/1|2\n{n}" for n in range(50)]
        assert all(a.send("mute", text) for text in sent)
        await eventually(lambda: len(a.lost) == len(sent), 5, "every frame reported lost")
        assert taken == sent
        assert [text for text, _ in a.lost] == sent
        assert "closed by the other node" in a.lost[0][1]
        nursery.cancel_scope.cancel()


async def test_a_receiver_that_hangs_is_cut_after_the_timeout_and_its_frames_come_back() -> None:
    addresses: dict[str, str] = {}
    hang = trio.Event()
    async with trio.open_nursery() as nursery:
        taken = await _mute_node(nursery, addresses, hang)
        a = await _end(nursery, "a", addresses, timeout=0.3)
        sent = [f"M|1|a/1|2\n{n}" for n in range(50)]
        assert all(a.send("mute", text) for text in sent)
        await eventually(lambda: len(a.lost) == len(sent), 5, "every frame reported lost")
        assert taken == sent
        assert "no acknowledgement for 0.3s" in a.lost[0][1]
        hang.set()
        nursery.cancel_scope.cancel()


async def test_a_wrong_key_is_refused_and_what_waited_comes_back() -> None:
    addresses: dict[str, str] = {}
    async with trio.open_nursery() as nursery:
        b = await _end(nursery, "b", addresses)
        intruder = await _end(nursery, "x", addresses, key=linkwire.link_key(b"not ours"))
        assert intruder.send("b", "M|1|x/1|2\nlet me in")
        await eventually(lambda: bool(intruder.lost), 5, "the refusal")
        assert "refused by the other node: wrong link key" in intruder.lost[0][1]
        assert b.counters["cluster:link-refused"] == 1
        assert b.received == []
        nursery.cancel_scope.cancel()


async def test_the_queue_for_a_node_is_bounded_in_bytes_and_a_dead_address_is_reported() -> None:
    with trio.socket.socket() as closed:  # a port nobody listens on
        await closed.bind(("127.0.0.1", 0))
        addresses = {"gone": f"127.0.0.1:{closed.getsockname()[1]}"}
    async with trio.open_nursery() as nursery:
        a = await _end(nursery, "a", addresses, max_bytes=1000, backoff=30.0)
        text = "M|1|a/1|2\n" + "x" * 290  # 304 bytes with its length
        outcomes = [
            a.links.send("gone", (linkwire.encode(text), "M", None, -1.0)) for _ in range(4)
        ]
        assert outcomes[:3] == [None, None, None]
        assert outcomes[3] is not None and outcomes[3].full
        await eventually(lambda: len(a.lost) == 3, 5, "the three queued frames reported")
        assert "no link to node gone" in a.lost[0][1]
        # While it backs off, a frame for that node is refused at once (not held).
        refused = a.links.send("gone", (linkwire.encode(text), "M", None, -1.0))
        assert refused is not None and not refused.full
        nursery.cancel_scope.cancel()
