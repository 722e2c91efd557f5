"""Self-supervised CycleGAN 4x super-resolution of ultrasound images (Liu et al., seed 002).

    networks.py  the multi-scale generator G (LR -> SR, Fig. 1 / Table I), the degradation
                 generator F (HR -> LR, Fig. 2), the patch discriminator (Fig. 3); BlindSRNet
    resize.py    the bicubic resize (bicubic baseline, G's low-frequency input, the assumed operator)
    degrade.py   degradation operators (bicubic-aa, cubic, area, gauss<s>), their estimate from the
                 LR input, the evaluation's degradation set
    fathers.py   HR fathers / LR sons (ZSSR-style self-supervision) and random crops
    losses.py    Eq. 2-7 and the history buffer of generated images (Shrivastava et al.)
    schedule.py  the ZSSR learning-rate policy (1e-3 down to 1e-6)
    ensemble.py  8-way geometric self-ensemble with back-projection and the median
    ifc.py       information fidelity criterion (Sheikh et al. 2005), numpy
    config.py    typed configs with the paper's defaults
    trainer.py   zero-shot and dataset modes (the Liu generator)
    blind.py     the default blind generator (networks.BlindSRNet): supervised training on random
                 degradations (preset blind-sr), one-pass inference, zero-shot fine-tuning
    presets.py   the `liu2021-sr` preset for `sonoedge train`
    (the `sonoedge sr` command is sonoedge/commands/sr.py)
    evaluate_hc18.py  the paper's evaluation on the realus/hc18 frames
    evaluate_degradations.py  the evaluation over degradations (sr-eval --degradations) and handheld fidelity
    weights/     blind-sr-realtrain.pt: the default blind generator; liu2021-sr-realtrain.pt: the blind
                 dataset-mode Liu G; both trained on realtrain/hc18 only (docs/results/sr.md)
    bench.py     CPU timings (inference per 600 x 448 output, training iteration, ONNX Runtime)
"""
