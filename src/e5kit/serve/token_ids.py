"""Token-id input on the OpenAI route: tiktoken cl100k_base ids decoded back to the text they encode.

OpenAI clients that count tokens themselves (LangChain's `OpenAIEmbeddings` by default) send lists of
cl100k_base ids instead of text. Read as this model's own vocabulary they would be other words and
give a confidently wrong vector, so the server decodes them with tiktoken and then embeds the text
with the model's prompt policy and tokenizer, exactly as if the text had been sent.

tiktoken reads its encoding file from TIKTOKEN_CACHE_DIR (or its default cache) and fetches it on first
use. The file is loaded once, on a background thread when the app starts, so no request ever waits on
a network that may hang; where it cannot be had, token-id requests get a 422 naming the cause and the
client-side fix.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from e5kit.serve.tokens import BadInputError

CL100K = "cl100k_base"
CL100K_VOCAB = 100277  # ids 0..100276 (100256 is unused); tiktoken's n_vocab
LOAD_WAIT_S = 30.0
CLIENT_FIX = ("send text instead of token ids (LangChain: OpenAIEmbeddings(..., check_embedding_ctx_length=False); "
              "openai: pass strings)")


class TokenIdsUnavailableError(BadInputError):
    """Token ids arrived but cannot be read on this server (encoding missing, or turned off)."""

    code = "token_ids_unavailable"


class StillLoadingError(Exception):
    """The encoding file is still loading (HTTP 503 with Retry-After)."""


def _load_cl100k() -> Any:
    import tiktoken

    return tiktoken.get_encoding(CL100K)


class Cl100kDecoder:
    """cl100k_base ids -> text, with the encoding loaded once in the background."""

    def __init__(self, loader: Callable[[], Any] = _load_cl100k) -> None:
        self._loader = loader
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._started = False
        self.encoding: Any = None
        self.error: str | None = None

    def start(self) -> None:
        """Begin loading on a daemon thread (idempotent)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._load, name="e5kit-cl100k", daemon=True).start()

    def _load(self) -> None:
        try:
            self.encoding = self._loader()
        except ImportError:
            self.error = "the tiktoken package is not installed on the server (pip install 'e5kit[serve]')"
        except Exception as exc:  # a network error, a corrupt cache file: all mean "not available"
            self.error = f"tiktoken could not load {CL100K} ({type(exc).__name__}: {str(exc)[:200]})"
        finally:
            self._done.set()

    @property
    def status(self) -> str:
        """"ready", "loading", "unavailable: <cause>" or "not started" (for /info)."""
        if not self._started:
            return "not started"
        if not self._done.is_set():
            return "loading"
        return "ready" if self.encoding is not None else f"unavailable: {self.error}"

    def decode(self, arrays: Sequence[Sequence[int]], *, field: str = "input", nested: bool = True,
               wait_s: float = LOAD_WAIT_S) -> list[str]:
        """The texts the id arrays encode; an id outside cl100k_base raises BadInputError naming
        field[i][j] (field[j] when the request held one array, `nested=False`)."""
        self.start()
        if not self._done.wait(wait_s):
            raise StillLoadingError(f"the {CL100K} encoding is still loading; retry in a few seconds")
        if self.encoding is None:
            raise TokenIdsUnavailableError(
                f"{field} holds token ids, which OpenAI clients send as tiktoken {CL100K} ids, but this server "
                f"cannot decode them: {self.error}. Fix on the client: {CLIENT_FIX}. Fix on the server: put "
                f"the {CL100K} file in TIKTOKEN_CACHE_DIR, or start it with --token-ids model if the ids are "
                "the served model's own vocabulary", field)
        out = []
        for i, arr in enumerate(arrays):
            try:
                out.append(self.encoding.decode(arr))
            except (KeyError, ValueError, OverflowError, TypeError):
                j, bad = self._first_bad(arr)
                where = f"{field}[{i}][{j}]" if nested else f"{field}[{j}]"
                raise BadInputError(f"{where}: token id {bad} is not in tiktoken {CL100K} "
                                    f"(ids 0..{CL100K_VOCAB - 1} except 100256)", field) from None
        return out

    def _first_bad(self, arr: Sequence[int]) -> tuple[int, int]:
        for j, t in enumerate(arr):
            try:
                self.encoding.decode_single_token_bytes(t)
            except (KeyError, ValueError, OverflowError, TypeError):
                return j, t
        return 0, arr[0]
