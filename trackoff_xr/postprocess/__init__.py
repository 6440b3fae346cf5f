"""After matching: filters that reject and fill offsets, and offsets into velocities.

* :mod:`.filters` -- :func:`~.filters.filter_offsets` and its parts,
  :func:`~.filters.fill_gaps`;
* :mod:`.velocity` -- :func:`~.velocity.velocity`,
  :func:`~.velocity.pair_metadata`: offsets in pixels to metres per year,
  from the acquisition times.

Nothing is re-exported here, so that ``trackoff_xr.postprocess.velocity`` is
always the module; the functions are at the package top
(``trackoff_xr.velocity``, ``trackoff_xr.filter_offsets``, ...).
"""
