@echo off
rem Install what RVC Studio needs (first run only) and open the web UI.
rem Extra arguments go to infer-web.py, e.g.  go-web.bat --port 7897
cd /d "%~dp0"
for %%v in (3.12 3.11 3.13 3.10) do (
  if not exist ".venv\Scripts\python.exe" py -%%v -m venv .venv >nul 2>&1
)
if not exist ".venv\Scripts\python.exe" python -m venv .venv
if not exist ".venv\Scripts\python.exe" (
  echo Could not create a Python environment. Install Python 3.10-3.13 from python.org and try again.
  pause
  exit /b 1
)
".venv\Scripts\python.exe" tools\install.py
if errorlevel 1 (
  pause
  exit /b 1
)
".venv\Scripts\python.exe" infer-web.py %*
if errorlevel 1 pause
