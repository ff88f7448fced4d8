from relaystack.cli import main

main()
