"""Neural style transfer for ultrasound (Menini 2020, semester thesis, seed 003).

- ``vgg19.py``: the VGG19 loss network with Keras layer names (block1_conv1 ...), trunk loaded offline.
- ``losses.py``: Gram matrix (Eq. 2.3), content loss (Eq. 2.2), style loss (Eq. 2.4), the augmented
  style loss with segmentation masks (Eqs. 2.5 and 3.1), and the average style targets (Sec. 3.2).
- ``optimize.py``: Gatys NST by optimisation (Sec. 3.2, Table 4.1), local NST, ``sonoedge style``.
- ``transform_net.py``: the Johnson image transform network with StyleGAN noise injection (Sec. 3.3).
- ``trainer.py``: training the transform network with the perceptual loss (Sec. 4.3, Table 4.6),
  exact resume, preset ``menini2021-nst``.
"""
