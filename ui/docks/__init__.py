"""The analysis docks (QDockWidget subclasses); each talks to the service only through the Session."""
