"""jointspace.viz: plots of the joint space, retrieval galleries and training curves (PNG files).

- :func:`jointspace.viz.space_map.plot_joint_space`: a 2-D map (UMAP, t-SNE or PCA) of
  embeddings, coloured by label, one marker per modality, lines joining true pairs;
- :func:`jointspace.viz.gallery.write_gallery`: a grid of retrieved items with titles and scores;
- :func:`jointspace.viz.curves.plot_curves`: the numeric columns of a run's ``metrics.csv``.
"""
