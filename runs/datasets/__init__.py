"""Generated datasets in the real on-disk formats: the smoke profile's tiny ones, and the pilots'
at the real image sizes. Nothing here downloads anything.
"""
