"""Notification service of the MPP platform: WhatsApp, SMS and email to citizens."""
