"""The engines of the commands besides the table itself: status (where each run is), doctor (can
this machine or cluster run the table), eval (a checkpoint in a row's config) and plan (pilot and
cost estimate). Their command-line fronts are in ``tools/``.
"""
