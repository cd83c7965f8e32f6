from flowhook.cli import app

app()
