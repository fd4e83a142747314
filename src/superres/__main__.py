from superres.cli.main import main

raise SystemExit(main())
