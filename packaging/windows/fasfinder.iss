; FASFinder - Windows installer (Inno Setup 6).  UNTESTED: written on Linux, never compiled or run on
; Windows. See packaging/README.md for the steps (build the bundle on Windows first, then run
;     iscc packaging\windows\fasfinder.iss
; from the repository root). Input: dist\fasfinder\ (PyInstaller one-folder bundle with FASFinder.exe,
; the windowed desktop app, and fasfinder-cli.exe, the console command line). Output: dist\FASFinder-<ver>-setup.exe

#define AppName "FASFinder"
#define AppVersion "0.1.0"
#define AppPublisher "FASFinder team"
#define DistDir "..\..\dist\fasfinder"

[Setup]
AppId={{6C1E3A52-8F0B-4D7E-9B2A-FA5F1DE0C0DE}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher={#AppPublisher}
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
; The licence page: third-party notices, including that dlib's 68-point landmark model (iBUG 300-W)
; may only be used for NON-COMMERCIAL purposes. The user must accept it to install.
LicenseFile=..\licenses\NOTICE.txt
OutputDir=..\..\dist
OutputBaseFilename={#AppName}-{#AppVersion}-setup
Compression=lzma2
SolidCompression=yes
; The bundle holds torch and Qt: allow setups over 2 GB (written as setup.exe + setup-*.bin files).
DiskSpanning=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
PrivilegesRequiredOverridesAllowed=dialog
UninstallDisplayIcon={app}\FASFinder.exe
WizardStyle=modern

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#DistDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs
Source: "..\licenses\NOTICE.txt"; DestDir: "{app}"; DestName: "NOTICE.txt"; Flags: ignoreversion

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\FASFinder.exe"
Name: "{group}\Licence notice"; Filename: "{app}\NOTICE.txt"
Name: "{group}\Uninstall {#AppName}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\FASFinder.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\FASFinder.exe"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

; The gallery, settings and caches live in the user's folders (%LOCALAPPDATA%\fasfinder), not under {app}:
; uninstalling keeps them on purpose (they are case data).
