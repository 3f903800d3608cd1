# Client is added by the engine work
