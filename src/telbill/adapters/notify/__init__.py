"""Notification channels: signed webhooks over HTTP (httpx), email over SMTP (smtplib)."""
