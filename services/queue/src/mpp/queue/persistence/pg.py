"""The hot statements of call-next, start and complete as PostgreSQL SQL, sent straight to asyncpg.

Each cycle of a counter (call-next -> start -> complete) runs these and nothing else, so they skip
SQLAlchemy's statement processing (see :class:`mpp.kit.db.DriverSql`); SQLite runs the same steps through
the SQLAlchemy statements of :mod:`mpp.queue.persistence.repository`. Several steps that take one
statement each there are one statement here (common table expressions).
"""

from __future__ import annotations

LOCK_COUNTER_WITH_POLICIES = """
SELECT c.*,
       (SELECT p.document FROM policies p WHERE p.site = c.site AND p.agency = c.agency) AS agency_policy,
       (SELECT p.document FROM policies p WHERE p.site = c.site AND p.agency = '') AS site_policy
FROM counters c WHERE c.site = $1 AND c.code = $2
FOR UPDATE OF c
"""

NEAR = 8
"""How many of the first callable waiting tickets call-next reads, without locks, to lock its candidate
among them; its head (``$5``) is at most as long."""

# Run after the counter's row is locked (a statement of its own, so that its snapshot sees what a call
# that held the lock before committed). In one statement: the ticket the counter is busy with; the first
# NEAR callable waiting tickets of the counter's service types ($3), read without locks, of which the
# first $5 are the head of the queue (to rank and explain); the first of them in call order that no other
# transaction holds, locked (FOR UPDATE SKIP LOCKED); and when the every-Nth rule may apply ($6) the first
# priority ticket, locked the same way (the first one itself when that one is a priority ticket: a row
# this transaction locked already is not skipped).
#
# The queue is read through ix_tickets_waiting_type (waiting tickets by site and service type, in call
# order): the first NEAR tickets of each of the counter's service types, merged, so that only the
# counter's own services' tickets are visited, never the rest of the site's queue. The candidate is the
# first of them still waiting and not held by another counter, which is the first such ticket of the
# whole queue since they are its first tickets in the statement's snapshot; it is found by id, and its
# state is written so that no partial index on waiting tickets matches it (the plan then reads those few
# rows by primary key instead of combining the waiting tickets' indexes). Only when every one of them is
# taken or held (more counters calling the same services at that instant than NEAR) does the statement
# walk the queue further (first_rest), as far as the first ticket it can lock.
CALL_CANDIDATES = f"""
WITH busy AS (
    SELECT * FROM tickets
    WHERE site = $1 AND counter = $2 AND state IN ('called', 'serving')
    LIMIT 1
), near AS (
    SELECT w.* FROM unnest($3::text[]) AS st(code)
    CROSS JOIN LATERAL (
        SELECT * FROM tickets
        WHERE site = $1 AND service_type = st.code AND state = 'waiting' AND queued_at <= $4
        ORDER BY rank, queued_at, seq, id LIMIT {NEAR}
    ) AS w
    ORDER BY w.rank, w.queued_at, w.seq, w.id LIMIT {NEAR}
), head AS (
    SELECT * FROM near ORDER BY rank, queued_at, seq, id LIMIT $5
), first_near AS (
    SELECT * FROM tickets
    WHERE id = ANY(ARRAY(SELECT id FROM near)) AND state IN ('waiting', '')
    ORDER BY rank, queued_at, seq, id LIMIT 1
    FOR UPDATE SKIP LOCKED
), first_rest AS (
    SELECT * FROM tickets
    WHERE NOT EXISTS (SELECT FROM first_near)
        AND site = $1 AND state = 'waiting' AND service_type = ANY($3::text[]) AND queued_at <= $4
    ORDER BY rank, queued_at, seq, id LIMIT 1
    FOR UPDATE SKIP LOCKED
), first_priority AS (
    SELECT * FROM tickets
    WHERE $6 AND site = $1 AND state = 'waiting' AND service_type = ANY($3::text[]) AND queued_at <= $4
        AND priority_group <> 'none'
    ORDER BY rank, queued_at, seq, id LIMIT 1
    FOR UPDATE SKIP LOCKED
)
SELECT 'busy' AS kind, busy.* FROM busy
UNION ALL SELECT 'head', head.* FROM head
UNION ALL SELECT 'first', first_near.* FROM first_near
UNION ALL SELECT 'first', first_rest.* FROM first_rest
UNION ALL SELECT 'priority', first_priority.* FROM first_priority
"""  # noqa: S608

GET_TICKET_LOCKED = "SELECT * FROM tickets WHERE id = $1 FOR UPDATE"

START_TICKET = """
UPDATE tickets t SET state = 'serving', started_at = $2, officer = $3
FROM (SELECT * FROM tickets WHERE id = $1 FOR UPDATE) AS before
WHERE t.id = before.id
RETURNING before.*
"""
"""The ticket locked and written as its service started ($2) by an officer ($3), as it was before: the
start of service in one statement, when the ticket's state allows it (the caller checks, and its
transaction rolls back when not)."""

SAVE_TICKET = """
UPDATE tickets SET state = $2, call_count = $3, first_called_at = $4, called_at = $5, counter = $6,
    officer = $7, started_at = $8, finished_at = $9, transferred_to = $10, rank = $11,
    decision = COALESCE($12::json, decision)
WHERE id = $1
"""
"""$1..$12: the ticket's id and its changing columns (a NULL decision leaves the stored one)."""

SAVE_CALLED_TICKET = """
WITH counter_state AS (
    UPDATE counters SET calls_since_priority = $15 WHERE site = $13 AND code = $14
)
UPDATE tickets SET state = $2, call_count = $3, first_called_at = $4, called_at = $5, counter = $6,
    officer = $7, started_at = $8, finished_at = $9, transferred_to = $10, rank = $11,
    decision = COALESCE($12::json, decision)
WHERE id = $1
"""
"""The called ticket and the calls its counter made since the last priority ticket."""

SAVE_COMPLETED_TICKET = """
WITH served AS (
    UPDATE counters SET tickets_served = tickets_served + 1 WHERE site = $13 AND code = $14
), invited AS (
    INSERT INTO survey_invitations
        (token, ticket_id, site, agency, service_type, completed_at, closes_at, answered_at)
    SELECT $15::text, $1, $13, $16::text, $17::text, $18::timestamptz, $19::timestamptz, NULL::timestamptz
    WHERE $15::text IS NOT NULL
), saved AS (
    UPDATE tickets SET state = $2, call_count = $3, first_called_at = $4, called_at = $5, counter = $6,
        officer = $7, started_at = $8, finished_at = $9, transferred_to = $10, rank = $11,
        decision = COALESCE($12::json, decision)
    WHERE id = $1
)
SELECT * FROM tickets WHERE visit_id = $20 ORDER BY issued_at, id
"""
"""The completed ticket, one more served at its counter ($14; none when NULL) and its survey
invitation ($15 token, none when NULL); returns the tickets of its visit ($20), to tell whether the visit
ends. Run with the visit locked (:data:`GET_TICKET_AND_VISIT_LOCKED`): the statement's snapshot, taken
after that lock, has every ticket of the visit that another transaction finished and committed. The
completed ticket itself comes back as it was before this statement (a data-modifying part of a statement
is not visible to the statement's own reads)."""

# Ticket first, then its visit, as every path that locks both takes them.
GET_TICKET_AND_VISIT_LOCKED = """
SELECT t.*, v.site AS visit_site, v.channel AS visit_channel, v.started_at AS visit_started_at,
       v.ended_at AS visit_ended_at, v.tickets_total AS visit_tickets_total,
       v.tickets_served AS visit_tickets_served
FROM tickets t JOIN visits v ON v.id = t.visit_id
WHERE t.id = $1
FOR UPDATE OF t, v
"""
"""A ticket and its visit, both locked: an action that may finish the ticket may end the visit."""

GET_VISIT_LOCKED = "SELECT * FROM visits WHERE id = $1 FOR UPDATE"

LOCK_VISITS_OF_TICKETS = """
SELECT v.id FROM visits v
WHERE v.id IN (SELECT visit_id FROM tickets WHERE id = ANY($1::text[]))
ORDER BY v.id
FOR UPDATE OF v
"""
"""The visits of the tickets $1, locked in id order (the lock is taken on each row as the sort returns it)."""
TICKETS_OF_VISIT = "SELECT * FROM tickets WHERE visit_id = $1 ORDER BY issued_at, id"

_ENDED_VISITS = """
UPDATE visits v SET ended_at = u.ended_at, tickets_total = u.total, tickets_served = u.served
FROM unnest({0}::text[], {1}::timestamptz[], {2}::int[], {3}::int[]) AS u(id, ended_at, total, served)
WHERE v.id = u.id
"""
SAVE_VISITS = _ENDED_VISITS.format("$1", "$2", "$3", "$4")
"""Visits' changing columns: ids, end times, tickets, tickets served."""

INSERT_OUTBOX = """
INSERT INTO outbox (event_id, topic, key, value, headers, created_at)
SELECT e, t, k, v, h, $6 FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[], $5::bytea[])
    WITH ORDINALITY AS r(e, t, k, v, h, n)
ORDER BY n
"""
"""Every outbox row of a transaction in one statement, numbered (``seq``) in the order given."""

INSERT_OUTBOX_SAVING_VISITS = f"""
WITH visits_saved AS ({_ENDED_VISITS.format("$7", "$8", "$9", "$10")})
{INSERT_OUTBOX}"""
"""The outbox rows ($1..$6) and the visits saved in the transaction ($7..$10, as :data:`SAVE_VISITS`)."""
