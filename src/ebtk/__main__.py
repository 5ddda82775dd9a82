from ebtk.cli import main

raise SystemExit(main())
