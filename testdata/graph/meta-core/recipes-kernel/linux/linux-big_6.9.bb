inherit deploy
PROVIDES = "virtual/kernel"
