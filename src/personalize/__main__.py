from personalize.cli import main

main()
