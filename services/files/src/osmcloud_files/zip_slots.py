"""How many zips (a user's backup or chosen files, docs/backup-download.md) this process
streams at once. Each holds a few MiB (export.py's reads ahead), an S3 stream and a database
cursor for as long as its client reads, so they are counted: at most `most` at once in the
process and `per_account` of them for one account (so one account cannot take every slot).
A zip over either is refused before it starts (TooManyDownloads), never queued."""

from collections.abc import Iterator
from contextlib import contextmanager

from .errors import TooManyDownloads


class ZipSlots:
    def __init__(self, most: int, per_account: int) -> None:
        if most < 1 or per_account < 1:
            raise ValueError("zip download limits must be at least 1")
        self.most, self.per_account = most, per_account
        self._by_account: dict[str, int] = {}
        self.in_flight = 0

    @contextmanager
    def taken(self, user_id: str) -> Iterator[None]:
        """A slot for one zip of `user_id`, held while the block runs and given back however it
        ends (done, the client gone, S3 failing mid-stream). TooManyDownloads when the account
        already streams `per_account` zips or the process `most`."""
        mine = self._by_account.get(user_id, 0)
        if mine >= self.per_account:
            raise TooManyDownloads("account", self.per_account)
        if self.in_flight >= self.most:
            raise TooManyDownloads("server", self.most)
        self._by_account[user_id] = mine + 1
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            left = self._by_account[user_id] - 1
            if left:
                self._by_account[user_id] = left
            else:
                del self._by_account[user_id]
