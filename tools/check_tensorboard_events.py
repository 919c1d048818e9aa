"""Checks that TensorBoard's own reader loads the event files ferroflow writes.

Usage: python tools/check_tensorboard_events.py LOGDIR EPOCHS
Expects LOGDIR/train and LOGDIR/validation with epoch_loss and epoch_accuracy scalars,
one per epoch, numbered from 0. Exits non-zero with a message otherwise.
"""
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main():
    logdir, epochs = sys.argv[1], int(sys.argv[2])
    for run in ("train", "validation"):
        acc = EventAccumulator(f"{logdir}/{run}")
        acc.Reload()
        tags = acc.Tags()["scalars"]
        for tag in ("epoch_loss", "epoch_accuracy"):
            if tag not in tags:
                sys.exit(f"{run}: no scalar '{tag}' (found {tags})")
            events = acc.Scalars(tag)
            steps = [e.step for e in events]
            if steps != list(range(epochs)):
                sys.exit(f"{run}/{tag}: steps {steps}, expected 0..{epochs - 1}")
            if not all(0.0 <= e.value < 100.0 for e in events):
                sys.exit(f"{run}/{tag}: implausible values {[e.value for e in events]}")
        print(f"{run}: {sorted(tags)} x {epochs} epochs read by TensorBoard")


if __name__ == "__main__":
    main()
