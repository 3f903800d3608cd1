"""One producer, N consumer processes sharing the work through one shared subscription.

Every worker subscribes to ``$share/workers/<prefix>/jobs/#``: the broker hands each
job to exactly one of them (MQTT 5 shared subscriptions; mosquitto also accepts them
from MQTT 3.1.1 clients). Run it as::

    python shared_consumers.py [--workers 3] [--jobs 30] [mqtt://localhost]

The broker URI comes from the command line, else from ``MQTT_URI``.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid

import trio

from trio_mqttconn import Message, MqttClient


async def worker(uri: str, prefix: str, index: int) -> None:
    """Handle this worker's share of the jobs until the producer says stop."""
    handled: list[int] = []
    stop = trio.Event()
    async with MqttClient(uri, client_id=f"{prefix}-worker-{index}") as client:
        # Synchronous listeners are called by one task in arrival order, and the
        # producer publishes "stop" after its jobs: once stop is seen, every job
        # the broker gave this worker has been handled.
        await client.subscribe(
            f"$share/workers/{prefix}/jobs/#",
            qos=1,
            listener=lambda message: handled.append(int(message.payload)),
        )
        await client.subscribe(f"{prefix}/stop", qos=1, listener=lambda _: stop.set())
        await client.publish(f"{prefix}/ready", str(index), qos=1)
        await stop.wait()
    print(" ".join(map(str, handled)))


async def producer(uri: str, workers: int, jobs: int) -> None:
    """Start the workers, publish the jobs once all are subscribed, check the result."""
    prefix = f"example/{uuid.uuid4().hex[:12]}"
    outputs: list[str] = [""] * workers

    async def run_worker(index: int) -> None:
        command = [sys.executable, __file__, "--worker", str(index), "--prefix", prefix]
        result = await trio.run_process([*command, uri], capture_stdout=True)
        outputs[index] = result.stdout.decode()

    with trio.fail_after(30):
        async with (
            MqttClient(uri) as client,
            client.subscription(f"{prefix}/ready", qos=1) as ready,
            trio.open_nursery() as nursery,
        ):
            for index in range(workers):
                nursery.start_soon(run_worker, index)
            # Messages nobody subscribed to yet are dropped: wait for every worker.
            for _ in range(workers):
                message: Message = await ready.receive()
                print(f"worker {message.text} subscribed")
            for job in range(jobs):
                await client.publish(f"{prefix}/jobs/{job}", str(job), qos=1)
            await client.publish(f"{prefix}/stop", b"", qos=1)

    shares = [[int(job) for job in output.split()] for output in outputs]
    for index, share in enumerate(shares):
        print(f"worker {index} handled {len(share)} jobs: {share}")
    everything = sorted(job for share in shares for job in share)
    if everything != list(range(jobs)):
        raise SystemExit(f"jobs lost or handled twice: {everything}")
    print(f"{jobs} jobs, {workers} workers, each job handled exactly once")


def main() -> None:
    """Parse the command line; run the producer (or, with --worker, one worker)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "uri", nargs="?", default=os.environ.get("MQTT_URI", "mqtt://localhost")
    )
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        trio.run(worker, args.uri, args.prefix, args.worker)
    else:
        trio.run(producer, args.uri, args.workers, args.jobs)


if __name__ == "__main__":
    main()
