"""The links' wire rules without a socket: framing and the handshake's proofs."""

from __future__ import annotations

import pytest

from rtcserver.cluster import linkwire
from rtcserver.cluster.linkwire import FrameReader, LinkProtocolError

KEY = linkwire.link_key(b"the cluster's shared secret")


def test_many_frames_in_one_read_and_one_frame_over_many_reads() -> None:
    texts = ['M|1|a/1|2\n{"x":"é😀"}', "J|4|n/3|1,2", "", "E|7|no-peer\nbye"]
    data = b"".join(linkwire.encode(t) for t in texts)
    assert FrameReader(1024).feed(data) == texts
    reader = FrameReader(1024)
    got: list[str] = []
    for i in range(len(data)):
        got += reader.feed(data[i : i + 1])
    assert got == texts


def test_a_frame_over_the_limit_is_refused_before_it_is_read() -> None:
    reader = FrameReader(10)
    assert reader.feed(linkwire.encode("0123456789")) == ["0123456789"]
    with pytest.raises(LinkProtocolError, match="11 bytes"):
        reader.feed(linkwire.encode("0123456789x")[:4])


def test_a_frame_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(LinkProtocolError, match="UTF-8"):
        FrameReader(10).feed(b"\x00\x00\x00\x01\xff")


def test_both_ends_holding_the_key_prove_it_to_each_other() -> None:
    nonce = linkwire.nonce()
    receiver, r_nonce = linkwire.parse_hello(linkwire.hello("node-b", nonce))
    claim = linkwire.claim(KEY, receiver, r_nonce, "node-a")
    checked = linkwire.check_claim(KEY, "node-b", nonce, claim)
    assert checked is not None
    sender, accept = checked
    assert sender == "node-a"
    linkwire.check_accept(KEY, "node-b", nonce, claim, accept)  # raises if wrong


def test_a_wrong_key_is_refused_by_the_receiver_and_by_the_sender() -> None:
    nonce = linkwire.nonce()
    other = linkwire.link_key(b"another cluster's secret")
    assert (
        linkwire.check_claim(KEY, "node-b", nonce, linkwire.claim(other, "node-b", nonce, "x"))
        is None
    )
    claim = linkwire.claim(KEY, "node-b", nonce, "node-a")
    checked = linkwire.check_claim(other, "node-b", nonce, claim)
    assert checked is None
    # A receiver without the key cannot fake its answer, even by echoing the claim.
    with pytest.raises(LinkProtocolError, match="could not prove"):
        linkwire.check_accept(KEY, "node-b", nonce, claim, "K|" + claim.split("|")[3])
    with pytest.raises(LinkProtocolError, match="refused"):
        linkwire.check_accept(KEY, "node-b", nonce, claim, "N|wrong link key")


def test_a_proof_is_bound_to_both_nodes_and_the_receivers_nonce() -> None:
    nonce = linkwire.nonce()
    claim = linkwire.claim(KEY, "node-b", nonce, "node-a")
    assert linkwire.check_claim(KEY, "node-c", nonce, claim) is None  # replayed elsewhere
    assert linkwire.check_claim(KEY, "node-b", linkwire.nonce(), claim) is None  # replayed later
    forged = claim.replace("|node-a|", "|node-z|")
    assert linkwire.check_claim(KEY, "node-b", nonce, forged) is None
    with pytest.raises(LinkProtocolError):
        linkwire.check_claim(KEY, "node-b", nonce, "C|only|three")
