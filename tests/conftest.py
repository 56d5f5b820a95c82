pytest_plugins = ["deployer.emulator.testing"]
