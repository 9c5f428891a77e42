"""Device questions are asked of the model's own card: dtype by its capability, memory on it.

No GPU here: the CUDA queries are replaced by a fake machine with two cards, ``cuda:0`` and ``cuda:1``,
whose current device can be either. Each fake answers for the device it is asked about, and for the
current device when asked about none, as torch does, so code that forgets the device reads the wrong card.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
import torch

from generators.config import ModelConfig
from generators.pipelines import device as device_module
from generators.pipelines.device import (
    allocated,
    empty_cache,
    free_memory,
    native_bf16,
    pick_dtype,
    placement,
    reserved,
    total_memory,
)

T4, V100, A100, H100 = (7, 5), (7, 0), (8, 0), (9, 0)
GIB = 1024**3


@dataclass
class FakeCards:
    """Two CUDA cards as torch.cuda reports them."""

    capabilities: tuple[tuple[int, int], ...]
    allocated: tuple[int, ...] = (1 * GIB, 3 * GIB)
    totals: tuple[int, ...] = (16 * GIB, 80 * GIB)
    free: tuple[int, ...] = (10 * GIB, 70 * GIB)
    current: int = 0
    emptied_on: list[int] = field(default_factory=list)

    def index(self, device: torch.device | str | int | None = None) -> int:
        if device is None:
            return self.current
        index = device if isinstance(device, int) else torch.device(device).index
        return self.current if index is None else index

    @contextmanager
    def selected(self, device: torch.device | str | int) -> Iterator[None]:
        before, self.current = self.current, self.index(device)
        try:
            yield
        finally:
            self.current = before


@pytest.fixture
def cards(monkeypatch: pytest.MonkeyPatch) -> FakeCards:
    fake = FakeCards(capabilities=(T4, A100))
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    # What torch's own check says on a T4: bfloat16 "supported" (emulated). It must not be asked.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: fake.capabilities[fake.index(d)])
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda d=None: fake.allocated[fake.index(d)])
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda d=None: 2 * fake.allocated[fake.index(d)])
    monkeypatch.setattr(
        torch.cuda,
        "get_device_properties",
        lambda d=None: SimpleNamespace(total_memory=fake.totals[fake.index(d)]),
    )
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: (fake.free[fake.index(d)], 0))
    monkeypatch.setattr(torch.cuda, "device", fake.selected)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: fake.emptied_on.append(fake.current))
    return fake


@pytest.mark.parametrize(
    ("capability", "dtype"),
    [(T4, torch.float16), (V100, torch.float16), (A100, torch.bfloat16), (H100, torch.bfloat16)],
    ids=["T4", "V100", "A100", "H100"],
)
def test_auto_dtype_is_bfloat16_only_with_bf16_tensor_cores(
    cards: FakeCards, capability: tuple[int, int], dtype: torch.dtype
) -> None:
    cards.capabilities = (capability, capability)
    assert pick_dtype("auto", torch.device("cuda")) is dtype
    assert pick_dtype("auto", torch.device("cuda:1")) is dtype


def test_auto_dtype_asks_the_models_card_not_the_current_one(cards: FakeCards) -> None:
    cards.capabilities = (T4, A100)
    for current in (0, 1):  # whichever card the thread has selected
        cards.current = current
        assert pick_dtype("auto", torch.device("cuda:0")) is torch.float16
        assert pick_dtype("auto", torch.device("cuda:1")) is torch.bfloat16
    cards.current = 1
    assert pick_dtype("auto", torch.device("cuda")) is torch.bfloat16  # no index: the current card


def test_a_models_entry_on_the_second_card_gets_that_cards_dtype(cards: FakeCards) -> None:
    cards.capabilities = (A100, T4)
    assert placement(ModelConfig(name="tiny", device="cuda:1")) == (torch.device("cuda:1"), torch.float16)
    assert placement(ModelConfig(name="tiny", device="cuda:0")) == (torch.device("cuda:0"), torch.bfloat16)


def test_a_set_dtype_and_rocm_need_no_capability(cards: FakeCards, monkeypatch: pytest.MonkeyPatch) -> None:
    cards.capabilities = (T4, T4)
    assert pick_dtype("bfloat16", torch.device("cuda:0")) is torch.bfloat16  # the operator's choice
    monkeypatch.setattr(torch.version, "hip", "6.2")
    assert native_bf16("cuda:0")


def test_memory_is_read_on_the_models_card(cards: FakeCards) -> None:
    for current in (0, 1):
        cards.current = current
        assert allocated("cuda:1") == 3 * GIB
        assert allocated(torch.device("cuda:0")) == 1 * GIB
        assert reserved("cuda:1") == 6 * GIB
        assert total_memory("cuda:1") == 80 * GIB
        assert free_memory("cuda:1") == 70 * GIB
        assert total_memory("cuda:0") == 16 * GIB


def test_the_cache_is_emptied_on_the_models_card_and_the_current_one_is_kept(cards: FakeCards) -> None:
    cards.current = 0
    empty_cache("cuda:1")
    assert cards.emptied_on == [1]
    assert cards.current == 0


def test_off_cuda_nothing_is_counted_or_emptied(cards: FakeCards) -> None:
    for device in ("cpu", "mps", torch.device("cpu")):
        assert allocated(device) == 0
        assert reserved(device) == 0
        assert total_memory(device) is None
        assert free_memory(device) is None
        empty_cache(device)
        assert not native_bf16(device)
    assert cards.emptied_on == []


def test_without_cuda_a_cuda_device_reads_as_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert allocated("cuda:0") == 0
    assert total_memory("cuda") is None
    empty_cache("cuda:1")  # no CUDA context to touch: does nothing rather than raise
    assert device_module.on_cuda("cuda") is False
