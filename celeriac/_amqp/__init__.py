"""AMQP 0-9-1 (RabbitMQ) support shared by the AMQP broker and the RPC result backend.

* :mod:`celeriac._amqp.connection`: URL parsing, ``open_connection`` and the translation of
  py-amqp's errors into :class:`~celeriac.exceptions.TransportError` (stable API, used by
  other transports);
* :mod:`celeriac._amqp.topology`: queue, exchange and delay-queue declarations;
* :mod:`celeriac._amqp.consumer`: the consuming channel of the broker.

py-amqp (``amqp``) is imported inside these modules only: ``import celeriac`` never loads it.
"""
