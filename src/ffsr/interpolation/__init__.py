"""Neural frame interpolation in the filter graph: which interpolator model runs, where its
converted file lives, and which frame-rate changes it can make (graph shape:
filtergraphs/interpolate_rife.j2; network and export: convert/ffsr_convert/rife/)."""
