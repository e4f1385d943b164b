"""What a run records after its training loop: the measurements the loop's last iteration does
not make by itself, each followed by the pre-emption check, so a signal during them still
stops the run with its checkpoint.

- the last interval's training error and loss (an interval the loop ended inside);
- Section 4.1's signals at the last iteration (resdeg.training.signals);
- the final test error, unless the loop's last evaluation fell on the last iteration, and also
  when the run resumed from its last checkpoint after a kill during that evaluation;
- ImageNet's 10-crop errors of the trained net (Table 2, Table 3);
- Fig. 7's layer responses on CIFAR-10's test set (resdeg.training.responses).
"""

from __future__ import annotations

from resdeg.training.responses import record_layer_responses


def measure_at_the_end(
    cfg, trainer, module, datamodule, recorder, preemption, signals, resumed_at: int, name: str
) -> None:
    protocol = cfg.protocol
    trained_to_the_end = trainer.global_step >= protocol.iterations
    module.close_last_interval()
    if signals is not None:
        signals.measure(trainer, module)
    if trainer.global_step % protocol.eval_every or resumed_at >= protocol.iterations > 0:
        trainer.validate(module, datamodule=datamodule, verbose=False)
        preemption.stop_if_received(trainer)
    if getattr(datamodule, "has_test_crops", False) and trained_to_the_end:
        trainer.test(module, datamodule=datamodule, verbose=False)
        preemption.stop_if_received(trainer)
    if cfg.get("layer_responses") and "test" in datamodule.eval_split_names and trained_to_the_end:
        record_layer_responses(recorder, trainer, module, datamodule, name)
        preemption.stop_if_received(trainer)
