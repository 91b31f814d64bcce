"""Joint models: every method of the chapter behind one surface (see ``base.JointModel``)."""
