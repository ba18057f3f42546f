/*
   Detection rules for the campaigns in this quarter's reports.
   Author: Threat Research, ⟦research@example-labs.org⟧
   Version 1.4, 2024-03-20. Requires YARA 4.3.2 or later (the hash and pe modules).
*/

import "pe"
import "hash"

rule Sednit_Downloader_2024 : apt loader
{
    meta:
        description = "Downloader delivered by fake conference invitations"
        author = "Threat Research"
        date = "2024-03-18"
        version = "1.2"
        reference = "https://⟦intel.example-labs.org⟧/reports/sednit-2024"
        hash1 = "⟦5d0f2d5c7b3bd1a3e8b87e1a0bca0e4ab6a8e6e23ef8e2c08c2f6a3b7f1e9c44⟧"
        hash2 = "⟦9e4b2f7a1c3d5e6f8a0b2c4d6e8f1a3b5c7d9e0f2a4b6c8d1e3f5a7b9c0d2e4f⟧"
        md5 = "⟦0b8e1a5c9d3f7e2a6b4c8d0e2f1a3b5c⟧"
        tlp = "CLEAR"
    strings:
        $c2_1 = "⟦upd.msofficecloud.com⟧" ascii wide
        $c2_2 = "⟦185.174.100.52⟧" ascii
        $c2_3 = "/gate.php?id=%s&v=%d" ascii
        $ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36" ascii
        $mutex = "Global\\WinUpdMtx_5.2" ascii wide
        $path = "%APPDATA%\\Temp.NET\\wsus.exe" ascii wide
        $re_dns = /server-[0-9]{1,2}\.⟦evil-dns\.top ⇒ evil-dns.top⟧/ ascii
        $pdb = "D:\\Projects\\Loader\\Release\\wsus.pdb" ascii
    condition:
        uint16(0) == 0x5A4D and filesize < 800KB and
        pe.imphash() == "f34d5f2d4577ed6d9ceec516c1f5a744" and
        (2 of ($c2_*) or ($mutex and $path)) and
        pe.number_of_sections == 5
}

rule NPM_Stealer_Preinstall
{
    meta:
        description = "Malicious preinstall hooks of typosquatted npm packages"
        hash = "⟦3b9f1e7c5a2d8b4f6e0c1a3d5b7f9e2c4a6d8b0f⟧"
        date = "2024-04-02"
    strings:
        $u1 = "https://⟦cdn.pkg-mirror.dev⟧/s2/" ascii
        $u2 = "⟦api.pkg-mirror.dev⟧" ascii
        $ip = "⟦45.61.136.201⟧" ascii
        $js1 = "require('child_process').exec" ascii
        $js2 = "process.env.npm_config_registry" ascii
        $f = "package.json" ascii
    condition:
        filesize < 200KB and 2 of ($u*, $ip) and any of ($js*)
}

rule Phishing_Kit_Bank
{
    meta:
        description = "Bank credential phishing kit, second version"
        sha256 = "⟦943cf8bb390fd6a21735024acdb288e51825e70f679b8da4339da126adb15332⟧"
    strings:
        $p1 = "⟦collector@proton-mail-secure.net⟧" ascii
        $p2 = "⟦https://api.telegram.org⟧/bot" ascii
        $p3 = "blocker.php" ascii
        $p4 = "66.249.64.0/19" ascii
        $p5 = "$_SERVER['REMOTE_ADDR']" ascii
    condition:
        all of ($p1, $p2) or 3 of them
}

rule Known_Bad_Files
{
    meta:
        description = "Files we have confirmed, by hash"
    condition:
        hash.md5(0, filesize) == "⟦d2c4e6f8a0b1c3d5e7f9a2b4c6d8e0f1⟧" or
        hash.md5(0, filesize) == "⟦17c5a0e4b2d8f6a1c3e9b7d5f0a2c4e6⟧" or
        hash.sha1(0, filesize) == "⟦a8467491cd6b232a7154467d5838c0b6b36e25b6⟧" or
        hash.sha256(0, filesize) == "⟦8fa6b3d1c0e2f45a9b7c1d3e5f7a9b2c4d6e8f0a1b3c5d7e9f2a4b6c8d0e1f3a⟧" or
        hash.sha256(0, filesize) == "⟦e1c0da4b7a2f9e35b6d8c1a0f3e5d7b9c2a4e6f8d0b1c3e5a7f9d2b4c6e8a0f1⟧"
}

rule Suspicious_Dotnet_Loader
{
    meta:
        description = "A .NET loader that resolves its C2 at run time"
        note = "Uses System.Net.WebClient and System.IO.Compression; built with .NET Framework 4.8"
    strings:
        $n1 = "System.Net.WebClient" ascii wide
        $n2 = "Microsoft.NET" ascii wide
        $n3 = "System.IO.Compression.GZipStream" ascii wide
        $n4 = "⟦telemetry-cdn.net⟧" ascii wide
        $n5 = { 68 74 74 70 73 3A 2F 2F }
    condition:
        uint16(0) == 0x5A4D and pe.is_dll() == false and 3 of them
}
