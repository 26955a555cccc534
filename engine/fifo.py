"""Intrusive doubly linked FIFO lists over the order pool (njit): head/tail per owner,
prev/next per order slot, -1 for none. Two lists run through every resting order: its price
level's queue (book.enqueue/dequeue: time priority) and its account's acceptance list
(accounts.join_account/leave_account: the order KILL cancels in). One implementation serves both;
the callers pass the columns.

Nothing here allocates. The functions take arrays, not EngineState, so a call that LLVM leaves
out of line passes six words instead of the whole state.
"""

from __future__ import annotations

from numba import njit

from engine.jit import HOT


@njit(**HOT)
def link_last(head, tail, prev, nxt, owner, o):
    """Append order o at the back of owner's list."""
    t = tail[owner]
    prev[o] = t
    nxt[o] = -1
    if t >= 0:
        nxt[t] = o
    else:
        head[owner] = o
    tail[owner] = o


@njit(**HOT)
def unlink(head, tail, prev, nxt, owner, o):
    """Take order o out of owner's list."""
    p = prev[o]
    nx = nxt[o]
    if p >= 0:
        nxt[p] = nx
    else:
        head[owner] = nx
    if nx >= 0:
        prev[nx] = p
    else:
        tail[owner] = p
