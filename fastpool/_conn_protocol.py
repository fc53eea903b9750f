"""How a pool family talks to its connections: one strategy object per family.

The pool core (slots, waiting, workers, open/close, sizing) is the same for
psycopg's ``ConnectionPool`` and the generic DB-API ``Pool``; what differs is
how a connection's state is read and restored. Each family's pool class names
its strategy in the class attribute ``_protocol``; the core and the shared slot
logic only ask it for the family's logger, and each family's own return and
check paths ask it the rest (as SQLAlchemy puts a dialect's rollback, close
and ping behind one small object).

The strategies hold no state: one instance of each serves every pool.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from ._constants import ACTIVE, INERROR, INTRANS, UNKNOWN
from ._driver_traits import traits_of


class ConnProtocol:
    """What the core needs of every family: where its log records go."""

    logger: logging.Logger


class PsycopgProtocol(ConnProtocol):
    """psycopg 3 connections: the transaction state is libpq's, read without a
    round trip; a connection whose state is UNKNOWN is closed or broken."""

    logger = logging.getLogger("psycopg.pool")

    @staticmethod
    def transaction_status(conn: Any) -> int:
        return conn.pgconn.transaction_status  # type: ignore[no-any-return]  # libpq's enum, an int

    @staticmethod
    def is_broken(conn: Any) -> bool:
        """Closed, or its connection to the server lost."""
        return bool(conn.pgconn.transaction_status == UNKNOWN)

    @staticmethod
    def in_transaction(conn: Any) -> bool:
        return conn.pgconn.transaction_status in (ACTIVE, INTRANS, INERROR)


class DbapiProtocol(ConnProtocol):
    """Any DB-API 2.0 driver, through what its connection class offers
    (``_driver_traits``). The pool hands it what it holds: an object with the
    driver's connection as ``raw`` and that connection's traits as ``traits``."""

    logger = logging.getLogger("fastpool")

    @staticmethod
    def is_clean(held: Any) -> bool:
        """Open and in no transaction (False when the driver can't tell)."""
        raw, traits = held.raw, held.traits
        try:
            return not traits.in_transaction(raw) and not traits.is_closed(raw)
        except Exception:
            return False

    def reset(
        self,
        held: Any,
        reset_on_return: str | None,
        user_reset: Callable[[Any], object] | None,
        failed: bool,
    ) -> bool:
        """End a returned connection's transaction (``reset_on_return``) and
        run ``user_reset``: False if the connection is closed or the reset
        failed (it is to be discarded). ``failed``: the block that used it
        raised, perhaps because the connection broke in a way the driver
        doesn't tell (MySQL Connector): ping it to find out."""
        raw, traits = held.raw, held.traits
        try:
            if traits.is_closed(raw):
                self.logger.warning("discarding closed connection: %r", raw)
                return False
            if reset_on_return is not None and traits.in_transaction(raw):
                if reset_on_return == "commit":
                    raw.commit()
                else:
                    raw.rollback()
            if user_reset is not None:
                user_reset(raw)
            if failed:
                traits.ping(raw)
        except Exception as ex:
            self.logger.warning("discarding connection %r: its reset failed: %s", raw, ex)
            return False
        return True

    def end_transaction(self, held: Any, commit: bool) -> None:
        """Commit (``commit``) or roll back, skipping the call when the driver
        says no transaction is open; a failed rollback is logged, not raised."""
        raw, in_transaction = held.raw, held.traits.in_transaction
        if commit:
            if in_transaction(raw):
                raw.commit()
            return
        try:
            if in_transaction(raw):
                raw.rollback()
        except Exception as ex:
            self.logger.warning("error ignored in rollback on %r: %s", raw, ex)

    @staticmethod
    def is_closed(raw: Any) -> bool:
        return traits_of(raw).is_closed(raw)

    @staticmethod
    def ping(raw: Any) -> None:
        """The driver's ``ping()`` without reconnecting, or ``SELECT 1``."""
        traits_of(raw).ping(raw)


PSYCOPG = PsycopgProtocol()
DBAPI = DbapiProtocol()
