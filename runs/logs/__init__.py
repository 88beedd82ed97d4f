"""Training logs as data, read by the engine and the reporter alike: the log formats (ours and the
official runs'), the official runs beside ours at matched points, and a config's lr at every
iteration as mmengine's schedulers step it.
"""
