"""Feed blocks: the changes feed reads change numbers in windows named by blocks of
FEED_BLOCK numbers, kept as strings beside each number (a version's seq_block, a head's
changed_block). The local server (our FerretDB build) answers string conditions from an index
and decodes every document of the account for a numeric range; {user_id, seq_block: {$in:
[...]}} is an index lookup on it and on MongoDB alike."""

FEED_BLOCK = 100  # change numbers per feed block


def feed_block(seq: int) -> str:
    """The feed block of a change number."""
    return str(seq // FEED_BLOCK)


def feed_blocks(after: int, upto: int) -> list[str]:
    """The feed blocks of the change numbers in (after, upto]."""
    return [str(b) for b in range((after + 1) // FEED_BLOCK, upto // FEED_BLOCK + 1)] if upto > after else []


def window_end(after: int, width: int) -> int:
    """The end of a window of about `width` numbers after `after`: the last number of a block
    when that keeps at least half of them, so that a read brings whole blocks (every
    document of a block is decoded by the local server, the ones outside the window too)."""
    end = after + width
    aligned = (end + 1) // FEED_BLOCK * FEED_BLOCK - 1
    return aligned if 2 * (aligned - after) >= width else end
