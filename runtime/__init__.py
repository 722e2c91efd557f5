"""sonoedge.runtime: what runs on the device. numpy, OpenCV and one inference engine; never torch.

It also holds the conventions every stage shares (the frame contract in ``frames``, the bundle
manifest in ``manifest``, registries, typed config, errors), so train and export import them from
here and the device needs nothing heavier.
"""
