"""The pure half of mediaflow.py: when getStats() samples show media flowing (no browser)."""

from __future__ import annotations

from tests.browser.mediaflow import Inbound, not_flowing


def inbound(frames: int, audio: int = 10, serial: int = 1, state: str = "connected") -> Inbound:
    return Inbound(peer=f"p{serial}", serial=serial, state=state, frames=frames, audio=audio)


def test_frames_must_grow_between_two_samples_of_this_wait() -> None:
    assert not_flowing({}, [inbound(50)], peers=1) is not None  # one sample proves nothing
    assert not_flowing({1: inbound(50)}, [inbound(50)], peers=1) is not None  # stalled
    assert not_flowing({1: inbound(50)}, [inbound(51)], peers=1) is None


def test_a_new_connection_is_not_compared_with_the_old_one() -> None:
    assert not_flowing({1: inbound(50)}, [inbound(900, serial=2)], peers=1) is not None


def test_every_peer_connected_with_audio_and_the_right_count() -> None:
    first = {1: inbound(5), 2: inbound(5, serial=2)}
    growing = [inbound(9), inbound(9, serial=2)]
    assert not_flowing(first, growing, peers=2) is None
    assert not_flowing(first, growing, peers=3) == "2 peer connections, not 3"
    assert not_flowing(first, [inbound(9), inbound(5, serial=2)], peers=2) is not None
    assert not_flowing(first, [inbound(9), inbound(9, 0, serial=2)], peers=2) is not None
    assert not_flowing(first, [inbound(9), inbound(9, 0, serial=2)], peers=2, audio=False) is None
    assert not_flowing(first, [inbound(9, state="failed"), growing[1]], peers=2) is not None
    assert not_flowing({}, [inbound(0, audio=3)], peers=1, video=False) is None
    assert not_flowing({}, [inbound(0, audio=0)], peers=1, video=False) is not None
    none = Inbound(peer="x", serial=0, state="none", frames=0, audio=0)
    assert not_flowing({}, [none], peers=1, video=False) == "x: connection none"
