"""A watchdog for client loops: a round that takes over LIMIT seconds is a stall; the process
then prints which round and exits 3 (a stalled client cannot end itself)."""

import os
import threading
import time

LIMIT = 20


class Watchdog:
    def __init__(self, what):
        self.what, self.round, self.since, self.done = what, None, time.monotonic(), False
        threading.Thread(target=self._watch, daemon=True).start()

    def start(self, name):
        """Marks the start of round `name`."""
        self.round, self.since = name, time.monotonic()

    def stop(self):
        self.done = True

    def _watch(self):
        while not self.done:
            time.sleep(0.5)
            if time.monotonic() - self.since > LIMIT:
                print(f"STALL in round {self.round} ({self.what})", flush=True)
                os._exit(3)
