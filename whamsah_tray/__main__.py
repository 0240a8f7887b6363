from whamsah_tray.cli import main

raise SystemExit(main())
