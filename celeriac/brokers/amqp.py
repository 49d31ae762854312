"""The RabbitMQ broker (AMQP 0-9-1 through py-amqp): ``amqp://``, ``amqps://``, ``pyamqp://``.

Guarantees (docs/amqp.md has the user's view, docs/decisions/0020 the reasons):

* **Publish** returns once RabbitMQ confirmed the message (publisher confirms);
  ``publish_many`` writes the batch and then waits for all confirms (one round trip).
  Messages are persistent, queues durable.
* **Consume** claims with manual acks and a ``basic.qos`` window of the number asked for;
  claimed messages stay unacked until ``ack``/``requeue``/``reject``. A lost connection or a
  crashed worker gives them back natively (RabbitMQ redelivers them flagged ``redelivered``;
  quorum queues also count deliveries). There are no leases: ``renew`` only keeps the
  connection's heartbeats going while the worker is too busy to claim.
* **Delays** (countdown/eta) wait in RabbitMQ's TTL delay queues, never in a worker; a
  message that arrives before its eta is sent on to the next delay queue at once and acked,
  so no worker holds an unacked message for long (RabbitMQ's ``consumer_timeout``).
* **Priorities** where a queue has ``x-max-priority`` (``max_priority`` /
  ``task_queue_max_priority``, or the queue's declaration); FIFO otherwise.
* **Reject** logs to ``rejected_sink``, publishes a copy (with the reason) to
  ``<queue>.dead-letter`` and then acks the original.
* **Broadcast** over fanout exchanges; each subscription has its own connection.

Threads: publishing is shared by the threads of a process under a lock; consuming and
settling use the broker's consumer connection under another (the worker's main loop). A
connection made before ``fork()`` is never used in the child.

Transport options (``broker_transport_options``, or the URL's query): ``max_priority``,
``queue_type`` (``classic``/``quorum`` for queues celeriac creates), ``task_queues``
(declarations as Celery's setting), ``confirm_timeout``, ``connect_timeout``,
``heartbeat``, ``ssl`` / ``broker_use_ssl``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from celeriac._amqp.connection import (
    CLIENT_ERRORS,
    SCHEMES,
    parse_url,
)
from celeriac._amqp.consumer import Consumer
from celeriac._amqp.publisher import Declaration, Outgoing, Publisher
from celeriac._amqp.subscription import FanoutReader, declare_broadcast
from celeriac._amqp.topology import (
    DELAY_EXCHANGE,
    DELAY_HEADER,
    QueueSpec,
    broadcast_exchange,
    dead_letter_queue,
    declare_delay_bucket,
    declare_queue,
    default_spec,
    delay_bucket_ms,
    specs_of,
)
from celeriac._amqp.wire import delivery_count, delivery_mode_of, to_envelope, to_message
from celeriac.brokers.base import Broker, Capabilities, Subscription
from celeriac.message import Delivery, Envelope

#: header of a dead-lettered copy: why it was rejected, and where from
REJECTED_REASON_HEADER = "celeriac-rejected-reason"
REJECTED_QUEUE_HEADER = "celeriac-rejected-queue"
_REASON_MAX_CHARS = 2000


class AmqpSubscription(FanoutReader, Subscription):
    """A broadcast subscription (:mod:`celeriac._amqp.subscription`)."""


class AMQPBroker(Broker):
    schemes = SCHEMES
    capabilities = Capabilities(
        native_delays=True, leases=False, priorities=False, broadcast=True,
        atomic_publish_once=False,
    )

    #: Celery settings this broker reads when they come in its transport options under their
    #: own names (as backends' ``app_settings``), or through :meth:`use_settings`
    app_settings: tuple[str, ...] = (
        "task_queues", "task_queue_max_priority", "task_create_missing_queue_type",
        "task_default_delivery_mode", "broker_use_ssl",
    )

    def __init__(self, url: str, *, transport_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, transport_options=transport_options)
        self.params = parse_url(url, self.transport_options)
        options = self.params.options
        self.max_priority = int(
            options.get("max_priority") or options.get("task_queue_max_priority") or 0) or None
        self.queue_type = (
            options.get("queue_type") or options.get("task_create_missing_queue_type") or None)
        #: 2 (persistent) unless ``delivery_mode`` / ``task_default_delivery_mode`` says 1
        self.delivery_mode = delivery_mode_of(
            options.get("delivery_mode", options.get("task_default_delivery_mode")))
        self._specs: dict[str, QueueSpec] = {}
        self.configure_queues(options.get("task_queues"))
        #: names of the queues this broker object declared (what a test cleans up)
        self.declared_queues: set[str] = set()
        self._publisher = Publisher(self.params)
        self._consumer = Consumer(self.params, self._declare_on)
        # (generation, channel) of the consumer's connection for passive declares and purges
        self._admin: tuple[int, Any] | None = None

    # -- topology ----------------------------------------------------------------------------------
    def configure_queues(
        self, task_queues: Any, max_priority: int | None = None, queue_type: str | None = None
    ) -> None:
        """Use Celery's ``task_queues`` declarations (and ``task_queue_max_priority``,
        ``task_create_missing_queue_type``) for the queues declared from now on."""
        if max_priority:
            self.max_priority = int(max_priority)
        if queue_type:
            self.queue_type = queue_type
        self._specs.update(specs_of(task_queues, self.max_priority))
        if self.max_priority or any(s.max_priority for s in self._specs.values()):
            self.capabilities = replace(type(self).capabilities, priorities=True)

    def use_settings(self, conf: Mapping[str, Any]) -> None:
        """Read the app's settings (``task_queues``, ``task_queue_max_priority``,
        ``task_create_missing_queue_type``, ``task_default_delivery_mode``); the app calls it
        after creating the broker."""
        self.delivery_mode = delivery_mode_of(
            conf.get("task_default_delivery_mode"), self.delivery_mode)
        self.configure_queues(
            conf.get("task_queues"),
            conf.get("task_queue_max_priority"),
            conf.get("task_create_missing_queue_type"),
        )

    def spec(self, queue: str) -> QueueSpec:
        found = self._specs.get(queue)
        if found is None:
            found = self._specs[queue] = default_spec(queue, self.max_priority, self.queue_type)
        return found

    def _declare_on(self, channel: Any, queue: str) -> None:
        declare_queue(channel, self.spec(queue))
        self.declared_queues.add(queue)

    def _declare_bucket(self, channel: Any, bucket_ms: int) -> None:
        self.declared_queues.add(declare_delay_bucket(channel, bucket_ms))

    def _queue_declaration(self, queue: str) -> Declaration:
        return (("queue", queue), lambda channel: self._declare_on(channel, queue))

    # -- producing -----------------------------------------------------------------------------
    def publish(self, queue: str, envelope: Envelope) -> None:
        self.publish_many(((queue, envelope),))

    def publish_many(self, items: Iterable[tuple[str, Envelope]]) -> None:
        batch: list[Outgoing] = []
        declarations: dict[Any, Declaration] = {}
        now_ms = 0.0
        for queue, envelope in items:
            if ("queue", queue) not in declarations:
                declarations[("queue", queue)] = self._queue_declaration(queue)
            eta = envelope.eta_timestamp() if envelope.has_eta else None
            if eta is not None:
                now_ms = now_ms or time.time() * 1000.0
                remaining_ms = eta * 1000.0 - now_ms
                if remaining_ms > 0:
                    batch.append(self._delayed(queue, envelope, remaining_ms, declarations))
                    continue
            spec = self.spec(queue)
            message = to_message(envelope, None, self.delivery_mode)
            batch.append((spec.exchange, spec.publish_key, message, True))
        self._publisher.send(batch, list(declarations.values()))

    def _delayed(
        self, queue: str, envelope: Envelope, remaining_ms: float,
        declarations: dict[Any, Declaration],
    ) -> Outgoing:
        bucket = delay_bucket_ms(remaining_ms)
        key = ("delay", bucket)
        if key not in declarations:
            declarations[key] = (key, lambda channel: self._declare_bucket(channel, bucket))
        message = to_message(envelope, {DELAY_HEADER: str(bucket)}, self.delivery_mode)
        # Dead-lettered on expiry to the default exchange under this routing key: the queue.
        return (DELAY_EXCHANGE, queue, message, True)

    # -- consuming -----------------------------------------------------------------------------
    def consume(self, queues: Sequence[str], max_messages: int, timeout_s: float) -> list[Delivery]:
        if max_messages <= 0 or not queues:
            return []
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            received = self._consumer.fetch(queues, max_messages, deadline - time.monotonic())
            ready: list[Delivery] = []
            early: list[Delivery] = []
            now = time.time()
            for queue, message, tag in received:
                delivery = _delivery(queue, message, tag)
                eta = delivery.envelope.eta_timestamp() if delivery.envelope.has_eta else None
                (early if eta is not None and eta > now else ready).append(delivery)
            if early:
                # Arrived before its eta (a delay takes a few hops): on to the next delay
                # queue, confirmed before the original is acked.
                self.publish_many((d.queue, d.envelope) for d in early)
                self.ack(early)
            if ready or time.monotonic() >= deadline:
                return ready

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            self._consumer.ack([d.tag for d in deliveries])

    def requeue(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            self._consumer.requeue([d.tag for d in deliveries])

    def renew(self, deliveries: Sequence[Delivery]) -> None:
        """No leases here; while the worker holds messages it keeps the consumer connection's
        heartbeats going (the worker calls this from its heartbeat thread), so a worker busy
        with long tasks is not taken for dead and its messages are not redelivered; an idle
        publisher connection is kept alive too."""
        self._publisher.keep_alive()
        if deliveries:
            self._consumer.keep_alive()

    def holds(self, delivery: Delivery) -> bool:
        # A delivery of a lost channel (dropped, or replaced since) is back in its queue:
        # RabbitMQ delivers it again.
        consumer = self._consumer
        return consumer._channel is not None and bool(delivery.tag[0] == consumer.generation)

    def reject(self, deliveries: Sequence[Delivery], reason: str) -> None:
        if not deliveries:
            return
        self.log_rejected(deliveries, reason)
        # A delivery of a lost channel is back in its queue already: it comes again.
        current = [d for d in deliveries if d.tag[0] == self._consumer.generation]
        if not current:
            return
        declarations: dict[Any, Declaration] = {}
        batch: list[Outgoing] = []
        for d in current:
            dlq = dead_letter_queue(d.queue)
            if ("queue", dlq) not in declarations:
                declarations[("queue", dlq)] = self._queue_declaration(dlq)
            headers = {REJECTED_REASON_HEADER: reason[:_REASON_MAX_CHARS],
                       REJECTED_QUEUE_HEADER: d.queue}
            batch.append(("", dlq, to_message(d.envelope, headers), True))
        self._publisher.send(batch, list(declarations.values()))
        self.ack(current)

    # -- broadcast -----------------------------------------------------------------------------
    def broadcast(self, channel: str, payload: bytes) -> None:
        import amqp

        exchange = broadcast_exchange(channel)
        self._publisher.send(
            [(exchange, "", amqp.Message(payload, delivery_mode=1), False)],
            [(("exchange", exchange), lambda ch: declare_broadcast(ch, exchange))],
        )

    def subscribe(self, channel: str) -> Subscription:
        return AmqpSubscription(self.params, broadcast_exchange(channel))

    # -- queues --------------------------------------------------------------------------------
    def purge(self, queues: Sequence[str]) -> int:
        return sum(self._admin_call(queue, "purge") for queue in queues)

    def queue_size(self, queue: str) -> int:
        """Messages ready on ``queue`` (those waiting in a delay queue are not counted: the
        delay queues are shared by every queue)."""
        return self._admin_call(queue, "size")

    def _admin_call(self, queue: str, what: str) -> int:
        """``queue_purge`` or a passive ``queue_declare`` on a channel of the consumer's
        connection that is not the consuming one (a missing queue closes the channel it was
        asked on: 0 then, and a new channel next time)."""
        import amqp

        consumer = self._consumer
        with consumer.lock:
            try:
                channel = consumer.channel()
                admin = self._admin
                if admin is None or admin[0] != consumer.generation or not admin[1].is_open:
                    admin = self._admin = (consumer.generation, channel.connection.channel())
                if what == "purge":
                    return int(admin[1].queue_purge(queue) or 0)
                return int(admin[1].queue_declare(queue, passive=True).message_count)
            except amqp.exceptions.NotFound:
                self._admin = None
                return 0
            except CLIENT_ERRORS as exc:
                self._admin = None
                raise consumer.failed(exc) from exc

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        self._publisher.close()
        with self._consumer.lock:
            self._admin = None
            self._consumer.drop()


def _delivery(queue: str, message: Any, tag: tuple[int, int]) -> Delivery:
    info = message.delivery_info
    redelivered = bool(info.get("redelivered"))
    return Delivery(to_envelope(message), queue, tag, redelivered=redelivered,
                    delivery_count=delivery_count(message, redelivered))
